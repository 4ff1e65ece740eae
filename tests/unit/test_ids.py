"""Deterministic ids are RFC 4122 uuid5 values: the spelled-out version must never drift."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from hub.core.ids import ID_NAMESPACE, stable_id


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_stable_id_is_uuid5_of_the_joined_parts(parts):
    assert stable_id(*parts) == str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(parts)))


def test_known_value_stays_fixed_across_versions():
    # Changing this breaks de-duplication of alerts already on the queues.
    assert stable_id("alert", "e1", "damage") == "c4d21337-4039-514e-ab04-81a7e42c1948"
