"""The reports rendered: JSON is the model's; CSV starts with a BOM and reads back to the model's
figures; HTML escapes untrusted names and states period, as-of and time zone; the PDF shows Chinese
with the packaged font, proven on a fontconfig that knows no Chinese font (this machine may have one,
which would hide a missing @font-face); labels exist in both languages; the committed JSON Schemas
and docs/reports/*.png are what the code makes now (HUB_UPDATE_DOCS=1 rewrites the PNGs).

The PDFs are made once, in a subprocess that runs this file (`python -m tests.test_report_rendering
DIR`) with FONTCONFIG_FILE set before anything loads fontconfig.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.reports import charts
from hub.reports.models import (
    AnyReport,
    BacklogAge,
    ChannelCounts,
    ComplaintsReport,
    Count,
    DailyCount,
    DepartmentKpi,
    Durations,
    KpiReport,
    Period,
    Share,
    Statement,
)
from hub.reports.render import (
    BOM,
    LABELS_FILE,
    LANGUAGES,
    SCHEMAS_DIR,
    TEMPLATES_DIR,
    json_schemas,
    labels,
    labels_table,
    render,
)
from schemas.enums import Department, ExceptionCode, NotificationChannel

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "reports"
CHINESE_NAME = "上海华东物流有限公司"
XSS = "<script>alert(1)</script>"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOVEMBER = Period(
    label="2026-11",
    start=datetime(2026, 11, 1, tzinfo=SHANGHAI),
    end=datetime(2026, 12, 1, tzinfo=SHANGHAI),
    timezone="Asia/Shanghai",
)
AS_OF = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)  # 08:05 in Shanghai
FONT_IN_PDF = "Hub-Noto-Sans-SC"  # how WeasyPrint names the packaged Noto Sans SC in the PDF


# --- sample reports, hand-written ------------------------------------------------------------------------


def statement(name: str | None = CHINESE_NAME, language: str = "zh") -> Statement:
    weekly = [12, 41, 38, 44, 47, 39, 15]
    days = [
        DailyCount(day=date(2026, 11, 1) + timedelta(days=i), shipments=weekly[i % 7] + (i * 5) % 9) for i in range(30)
    ]
    return Statement.model_validate(
        {
            "period": NOVEMBER,
            "as_of": AS_OF,
            "customer_id": "C-0001",
            "customer_name": name,
            "language": language,
            "shipments": sum(d.shipments for d in days),
            "delivered": 873,
            "on_time": Share(numerator=812, denominator=861, percent=94.3),
            "exceptions_by_kind": [
                Count(key="delayed", count=21),
                Count(key="address_issue", count=7),
                Count(key="damaged", count=3),
                Count(key="-", count=2),
            ],
            "claims": 3,
            "complaints": 5,
            "complaints_resolved": 4,
            "complaint_resolution": Durations(count=4, median_hours=18.5, p90_hours=41.2),
            "csat": Share(numerator=57, denominator=64, percent=89.1),
            "shipments_per_day": days,
        }
    )


def _department(name: str, created: int, resolved: int, met: int, l1: int, l2: int, hours: tuple[float, float]):
    percent = round(100 * met / resolved, 1) if resolved else None
    median, p90 = hours if resolved else (None, None)
    return DepartmentKpi(
        department=name,
        created=created,
        resolved=resolved,
        within_sla=Share(numerator=met, denominator=resolved, percent=percent),
        breaches_level_1=l1,
        breaches_level_2=l2,
        handling_time=Durations(count=resolved, median_hours=median, p90_hours=p90),
    )


def kpi() -> KpiReport:
    return KpiReport(
        period=NOVEMBER,
        as_of=AS_OF,
        departments=[
            _department("warehouse", 143, 138, 129, 9, 2, (3.2, 11.8)),
            _department("carrier_liaison", 96, 90, 80, 10, 3, (6.4, 20.1)),
            _department("claims", 31, 25, 22, 3, 0, (26.0, 70.5)),
            _department("complaints", 58, 55, 51, 4, 1, (9.5, 30.0)),
            _department("key_accounts", 12, 0, 0, 0, 0, (0, 0)),
        ],
        on_time_delivery=Share(numerator=20411, denominator=21690, percent=94.1),
        shipments=23917,
        exceptions=1187,
        exceptions_per_1000_shipments=49.63,
        stale_shipments=44,
        first_contact_resolution=Share(numerator=3120, denominator=3577, percent=87.2),
        csat=Share(numerator=1501, denominator=1788, percent=83.9),
        notifications=[
            ChannelCounts(channel="sms", sent=18230, failed=41),
            ChannelCounts(channel="email", sent=6120, failed=13),
            ChannelCounts(channel="wechat", sent=9411, failed=7),
            ChannelCounts(channel="webhook", sent=2210, failed=6),
        ],
    )


def complaints() -> ComplaintsReport:
    return ComplaintsReport(
        period=NOVEMBER,
        as_of=AS_OF,
        complaints=75,
        by_cause=[
            Count(key="complaint", count=52),
            Count(key="repeat_contact", count=17),
            Count(key="low_satisfaction", count=6),
        ],
        by_carrier=[Count(key="SF", count=31), Count(key="ZTO", count=24), Count(key="-", count=20)],
        by_customer=[Count(key="C-0001", count=5), Count(key=XSS, count=2)],
        by_department=[Count(key="complaints", count=58), Count(key="key_accounts", count=17)],
        time_to_resolve=Durations(count=69, median_hours=9.5, p90_hours=30.1),
        open_backlog=BacklogAge(under_1_day=8, days_1_to_3=2, days_3_to_7=1, over_7_days=0),
        repeat_contacts=17,
        shipments=23917,
        per_1000_shipments=3.14,
        resolved_within_due=Share(numerator=63, denominator=69, percent=91.3),
    )


REPORTS: dict[str, AnyReport] = {"statement": statement(), "kpi": kpi(), "complaints": complaints()}


# --- JSON and CSV ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", REPORTS)
def test_json_is_the_models_json(kind: str):
    report = REPORTS[kind]
    out = render(report, "json")
    assert json.loads(out) == report.model_dump(mode="json")
    assert type(report).model_validate_json(out) == report


def _numbers(value: Any) -> list[float]:
    """Every number in a JSON value."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def _sections(text: str) -> tuple[list[list[str]], dict[str, list[list[str]]]]:
    """(the header rows, {section title: [column names, *rows]}) of a rendered CSV."""
    blocks: list[list[list[str]]] = [[]]
    for row in csv.reader(io.StringIO(text)):
        if row:
            blocks[-1].append(row)
        else:
            blocks.append([])
    return blocks[0], {block[0][0]: block[1:] for block in blocks[1:]}


def _cell_numbers(rows: list[list[str]]) -> list[float]:
    found = []
    for row in rows:
        for cell in row:
            try:
                found.append(float(cell))
            except ValueError:
                continue
    return found


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", REPORTS)
def test_csv_has_a_bom_and_reads_back_to_the_models_figures(kind: str, language: str):
    report = REPORTS[kind]
    out = render(report, "csv", language)  # type: ignore[arg-type]
    assert out.startswith(BOM.encode("utf-8")), "Excel needs the BOM to read UTF-8"
    header, sections = _sections(out.decode("utf-8-sig"))
    # every figure is in the JSON, and every number of the JSON is in the CSV
    in_csv = _cell_numbers([row for rows in sections.values() for row in rows[1:]])
    assert sorted(set(in_csv)) == sorted(set(_numbers(report.model_dump(mode="json"))))
    t = labels(language)  # type: ignore[arg-type]
    assert [t["figure"], t["value"]] == sections[t["summary"]][0], "headers in the chosen language"
    assert [t["period"], "2026-11"] in header and [t["timezone"], "Asia/Shanghai"] in header
    assert [t["as_of"], "2026-12-01 08:05 (UTC+08:00)"] in header


def test_csv_figures_are_as_the_model_holds_them():
    _, sections = _sections(render(REPORTS["statement"], "csv").decode("utf-8-sig"))
    summary = dict(sections["概况"][1:])
    assert summary["发货量"] == str(REPORTS["statement"].shipments) and summary["理赔"] == "3"
    assert ["准时送达率", "94.3", "812", "861"] in sections["比率"]
    assert ["投诉解决时长", "4", "18.5", "41.2"] in sections["时长"]
    assert ["未注明", "2"] in sections["异常（按类型）"] and ["延误", "21"] in sections["异常（按类型）"]
    assert ["2026-11-02", "46"] in sections["每日发货量"]
    _, sections = _sections(render(REPORTS["kpi"], "csv", "en").decode("utf-8-sig"))
    assert ["Exceptions per 1,000 shipments", "49.63"] in sections["Summary"]
    assert ["Key accounts", "12", "0", "0", "", "0", "0", "", ""] in sections["Tasks by department"]
    assert ["WeChat", "9411", "7"] in sections["Customer notifications by channel"]


# --- HTML -------------------------------------------------------------------------------------------------


def test_html_escapes_untrusted_names():
    page = render(statement(name=XSS), "html").decode()
    assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page
    table = render(REPORTS["complaints"], "html").decode()
    assert XSS not in table and "&lt;script&gt;alert(1)&lt;/script&gt;" in table


@pytest.mark.parametrize("kind", REPORTS)
def test_html_states_period_as_of_and_time_zone_and_loads_nothing(kind: str):
    page = render(REPORTS[kind], "html", "en").decode()
    assert '<html lang="en">' in page
    for shown in ("2026-11 (2026-11-01 – 2026-11-30)", "2026-12-01 08:05 (UTC+08:00)", "Asia/Shanghai"):
        assert shown in page
    assert "All dates and times in this report are in Asia/Shanghai." in page
    assert "size: A4" in page and "counter(pages)" in page
    # self-contained: no links, scripts or files; the font is registered only for the PDF
    assert not re.search(r"\b(src|href)=|url\(|<script|site-packages", page)


def test_statement_speaks_its_customers_language_unless_asked():
    assert '<html lang="zh-CN">' in render(statement(), "html").decode()
    english = statement(name="Northwind Imports Ltd", language="en")
    assert '<html lang="en">' in render(english, "html").decode()
    assert '<html lang="zh-CN">' in render(english, "html", "zh").decode()
    assert '<html lang="zh-CN">' in render(REPORTS["kpi"], "html").decode(), "others default to zh"


def test_unknown_format_or_language_is_refused():
    with pytest.raises(ValueError, match="format"):
        render(REPORTS["kpi"], "xlsx")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="language"):
        render(REPORTS["kpi"], "html", "fr")  # type: ignore[arg-type]


# --- labels -----------------------------------------------------------------------------------------------


def test_every_label_exists_in_zh_and_en():
    table = labels_table()
    entries = list(table["labels"].items()) + [
        (f"{group}.{code}", entry) for group, codes in table["values"].items() for code, entry in codes.items()
    ]
    bad = [
        key for key, entry in entries if set(entry) != {"zh", "en"} or not all(str(v).strip() for v in entry.values())
    ]
    assert not bad, f"{LABELS_FILE.name}: these need exactly zh and en: {bad}"


def test_every_label_the_templates_and_renderer_use_exists():
    known = set(labels_table()["labels"])
    used = set()
    for path in TEMPLATES_DIR.iterdir():
        used |= set(re.findall(r"\bt\.(\w+)", path.read_text(encoding="utf-8")))
    source = (ROOT / "hub" / "reports" / "render.py").read_text(encoding="utf-8")
    used |= set(re.findall(r"\bt\[\"(\w+)\"\]", source))
    used |= set(re.findall(r"\(\"(\w+)\", r\.", source))  # figure rows: ("shipments", r.shipments, ...)
    assert used and not used - known, f"missing from {LABELS_FILE.name}: {sorted(used - known)}"


def test_every_code_a_figure_counts_by_has_a_label():
    values = labels_table()["values"]
    expected = {
        "department": {d.value for d in Department},
        "exception": {e.value for e in ExceptionCode},
        "channel": {c.value for c in NotificationChannel},
        "cause": {"complaint", "repeat_contact", "low_satisfaction"},
    }
    for group, codes in expected.items():
        assert codes <= set(values[group]), f"{group}: no label for {sorted(codes - set(values[group]))}"


# --- the chart --------------------------------------------------------------------------------------------


def test_chart_is_valid_deterministic_svg_and_cheap():
    days = REPORTS["statement"].shipments_per_day
    svg = charts.shipments_per_day(days, title="每日发货量 <&>", unit="件")
    assert svg == charts.shipments_per_day(days, title="每日发货量 <&>", unit="件")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}rect")) == sum(1 for d in days if d.shipments)
    assert root.get("aria-label") == "每日发货量 <&>"
    assert [t.text for t in root.findall(f"{ns}text")][:2] == ["件", "0"]
    started = time.process_time()
    for _ in range(200):
        charts.shipments_per_day(days, title="x", unit="y")
    assert (time.process_time() - started) / 200 < 0.005, "a chart should take about a millisecond"


@pytest.mark.parametrize(
    ("top", "expected"), [(0, [0, 1]), (3, [0, 1, 2, 3]), (7, [0, 2, 4, 6, 8]), (55, [0, 20, 40, 60])]
)
def test_chart_ticks_are_round(top: int, expected: list[int]):
    assert charts.ticks(top) == expected


def test_chart_of_a_long_period_labels_fewer_days():
    days = [DailyCount(day=date(2026, 1, 1) + timedelta(days=i), shipments=i % 5) for i in range(90)]
    texts = ET.fromstring(charts.shipments_per_day(days, title="x", unit="y")).findall(
        "{http://www.w3.org/2000/svg}text"
    )
    assert "01-01" in [t.text for t in texts] and len(texts) < 20


# --- the JSON Schemas -------------------------------------------------------------------------------------


def test_committed_report_schemas_are_up_to_date():
    stale = [
        name
        for name, text in json_schemas().items()
        if not (SCHEMAS_DIR / name).exists() or (SCHEMAS_DIR / name).read_text(encoding="utf-8") != text
    ]
    assert not stale, (
        f"out of date: {stale}; run `python -c 'from hub.reports.render import export_schemas; export_schemas()'`"
        " and commit schemas/json/reports/"
    )
    assert sorted(p.name for p in SCHEMAS_DIR.glob("*.json")) == sorted(json_schemas())


# --- PDF: made in a subprocess on a fontconfig without Chinese fonts --------------------------------------

# name -> (report, language); "control" is the statement without the @font-face, to show the test
# would notice: with the isolated fontconfig it must come out without the Chinese font.
PDF_CASES: dict[str, tuple[AnyReport, str | None]] = {
    "statement-zh": (REPORTS["statement"], None),
    "statement-en": (statement(name="Northwind Imports Ltd", language="en"), None),
    "statement-xss": (statement(name=XSS), None),
    "kpi-en": (REPORTS["kpi"], "en"),
    "complaints-zh": (REPORTS["complaints"], "zh"),
    "control": (REPORTS["statement"], None),
}


def _poppler(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} not installed: `python -m hub.dev.system` installs poppler-utils")
    return found


def _run(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pdfs")
    fonts = Path("/usr/share/fonts/truetype/dejavu")
    conf = out / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n'
        f"<fontconfig><dir>{fonts}</dir><cachedir>{out / 'fc-cache'}</cachedir></fontconfig>\n",
        encoding="utf-8",
    )
    env = {**os.environ, "FONTCONFIG_FILE": str(conf)}
    subprocess.run(
        [sys.executable, "-m", "tests.test_report_rendering", str(out)], cwd=ROOT, env=env, check=True, timeout=600
    )
    return out


def test_the_isolated_fontconfig_knows_no_chinese_font(pdfs: Path):
    isolated = {**os.environ, "FONTCONFIG_FILE": str(pdfs / "fonts.conf")}
    listed = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, env=isolated, check=True)
    assert listed.stdout.strip() == ""
    control = _run(_poppler("pdffonts"), str(pdfs / "control.pdf"))
    assert FONT_IN_PDF not in control, "without the @font-face the packaged font must be absent"
    # ... and yet pdftotext reads the name (the ToUnicode map), though the page shows boxes:
    # that is why the tests above ask pdffonts too
    assert CHINESE_NAME in _run(_poppler("pdftotext"), str(pdfs / "control.pdf"), "-")


@pytest.mark.parametrize("name", ["statement-zh", "statement-xss", "complaints-zh", "kpi-en"])
def test_pdf_embeds_the_packaged_chinese_font_and_only_it(name: str, pdfs: Path):
    fonts = _run(_poppler("pdffonts"), str(pdfs / f"{name}.pdf")).splitlines()[2:]
    assert fonts, "no fonts listed"
    for line in fonts:
        assert FONT_IN_PDF in line.split()[0] and line.split()[-5:-3] == ["yes", "yes"], line  # emb, sub


def test_pdf_text_has_the_chinese_name_period_as_of_zone_and_page_numbers(pdfs: Path):
    text = _run(_poppler("pdftotext"), "-layout", str(pdfs / "statement-zh.pdf"), "-")
    assert CHINESE_NAME in text
    for shown in ("客户服务月报", "2026-11 (2026-11-01 – 2026-11-30)", "2026-12-01 08:05 (UTC+08:00)", "Asia/Shanghai"):
        assert shown in text
    assert "第 1 页，共 1 页" in text and "每日发货量" in text and "件" in text  # the chart's SVG text too
    english = _run("pdftotext", str(pdfs / "statement-en.pdf"), "-")
    assert "Northwind Imports Ltd" in english and "Page 1 of 1" in english and "Customer statement" in english


def test_pdf_shows_an_untrusted_name_as_text(pdfs: Path):
    assert XSS in _run(_poppler("pdftotext"), str(pdfs / "statement-xss.pdf"), "-")
    assert XSS in _run("pdftotext", str(pdfs / "complaints-zh.pdf"), "-")


def test_pdf_is_a4_and_the_same_bytes_every_time(pdfs: Path):
    info = _run(_poppler("pdfinfo"), str(pdfs / "statement-zh.pdf"))
    assert re.search(r"Page size:\s+595\.\d+ x 841\.\d+ pts \(A4\)", info), info
    assert (pdfs / "statement-zh.pdf").read_bytes() == (pdfs / "statement-zh.again.pdf").read_bytes()


def test_rendering_is_quick(pdfs: Path):
    timings = json.loads((pdfs / "timings.json").read_text())
    print("render timings (CPU s):", timings)
    assert timings["statement_html_s"] < 0.05
    assert timings["statement_pdf_s"] < 5


@pytest.mark.parametrize(("png", "pdf"), [("statement-zh.png", "statement-zh"), ("kpi-en.png", "kpi-en")])
def test_committed_pngs_are_what_the_renderer_makes_now(png: str, pdf: str, pdfs: Path):
    from PIL import Image, ImageChops

    page_one = ["-r", "80", "-png", "-f", "1", "-l", "1", "-singlefile"]
    _run(_poppler("pdftoppm"), *page_one, str(pdfs / f"{pdf}.pdf"), str(pdfs / pdf))
    fresh = pdfs / f"{pdf}.png"
    committed = DOCS / png
    if os.environ.get("HUB_UPDATE_DOCS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(fresh, committed)
    assert committed.exists(), f"{committed} missing: run this test with HUB_UPDATE_DOCS=1 and commit it"
    with Image.open(fresh) as new, Image.open(committed) as old:
        assert new.size == old.size, f"{png}: page size changed; HUB_UPDATE_DOCS=1 rewrites it"
        difference = ImageChops.difference(new.convert("L"), old.convert("L")).point(lambda v: 255 if v > 48 else 0)
        changed = sum(difference.histogram()[255:])
        # anti-aliasing may differ between poppler builds; a changed word would not stay under this
        assert changed <= new.size[0] * new.size[1] // 10_000, f"{png}: {changed} pixels differ; HUB_UPDATE_DOCS=1"


def _make_pdfs(out: Path) -> None:
    """In the subprocess: every PDF case, a second statement to compare bytes, and warm timings."""
    from hub.reports import fonts
    from hub.reports import render as rendering

    for name, (report, language) in PDF_CASES.items():
        if name != "control":
            (out / f"{name}.pdf").write_bytes(render(report, "pdf", language))  # type: ignore[arg-type]
    report = REPORTS["statement"]
    (out / "statement-zh.again.pdf").write_bytes(render(report, "pdf"))
    timings = {}
    for fmt in ("html", "pdf"):
        started = time.process_time()
        for _ in range(3):
            render(report, fmt)  # type: ignore[arg-type]
        timings[f"statement_{fmt}_s"] = round((time.process_time() - started) / 3, 4)
    started = time.process_time()
    for _ in range(100):
        charts.shipments_per_day(report.shipments_per_day, title="x", unit="y")
    timings["chart_s"] = round((time.process_time() - started) / 100, 5)
    (out / "timings.json").write_text(json.dumps(timings))
    # the negative control: the same statement with no @font-face at all, in a fresh configuration
    rendering._pdf_setup.cache_clear()
    fonts.font_face_css = lambda: ""  # type: ignore[assignment]
    (out / "control.pdf").write_bytes(render(PDF_CASES["control"][0], "pdf"))


if __name__ == "__main__":
    _make_pdfs(Path(sys.argv[1]))
