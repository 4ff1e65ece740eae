"""Reports: complaint statistics, department KPIs, monthly customer statements. Figures are SQL
aggregates straight from the hub's database as of the moment asked (figures.py: each defined once,
with how it is counted); rendering to JSON, CSV, HTML and PDF is render.py."""
