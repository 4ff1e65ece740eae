"""The Chinese font of the PDF reports: Noto Sans SC (OFL-1.1), which pip installs with the
pylopdf-fonts-zh-cn package, so a machine without any CJK font still prints Chinese, not boxes.

Found with importlib.resources, never by a site-packages path: the templates only name the family,
and render.py registers the file with WeasyPrint through `font_face_css()`. The HTML keeps the same
family list, so a browser falls back to its own Chinese fonts. The regular weight is the only one
shipped; the stylesheet sets no bold, so HTML and PDF look alike.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

PACKAGE = "pylopdf_fonts_zh_cn"
FILE = "NotoSansSC-Regular.otf"  # the SC region font (CFF outlines); not a .ttc, whose face 0 is Japanese
FAMILY = "Hub Noto Sans SC"  # a name of our own: no system font can answer to it in place of the file
# what the stylesheet and the chart's SVG text ask for, first to last
STACK = (
    f"'{FAMILY}', 'Noto Sans SC', 'Noto Sans CJK SC', 'Source Han Sans SC', 'PingFang SC', "
    "'Microsoft YaHei', sans-serif"
)


class FontMissing(RuntimeError):
    """The packaged font is not installed: the PDF would show boxes for Chinese."""


@cache
def cjk_font() -> Path:
    """The Noto Sans SC file inside the installed package."""
    try:
        path = Path(str(files(PACKAGE).joinpath(FILE)))
    except ModuleNotFoundError:
        raise FontMissing(f"the {PACKAGE} package is not installed: pip install -e . brings it") from None
    if not path.is_file():
        raise FontMissing(f"{FILE} is missing from the {PACKAGE} package: reinstall it")
    return path


def font_face_css() -> str:
    """The @font-face rule that registers the packaged font under FAMILY (for WeasyPrint only)."""
    return f"@font-face {{ font-family: '{FAMILY}'; src: url('{cjk_font().as_uri()}'); }}"
