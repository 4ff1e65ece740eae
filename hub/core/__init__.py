"""The pure core: decoding, routing, rules, state and the batch fold. No I/O, no drivers:
import-linter (pyproject.toml) keeps asyncpg, aiokafka, faststream and httpx out."""
