"""The hub's benchmark: `python -m bench` (see bench/__main__.py and bench/README in the module docs).

In one run, on the same broker software and one Postgres:

1. a realistic mixed workload (bench.workload) is generated and preloaded, per phase, on a fresh broker;
2. three pipelines drain it: the floor (bare aiokafka + msgspec + one unnest INSERT per batch),
   the naive FastStream per-message pipeline, and the hub as shipped (`python -m hub run`);
3. the hub's publish-to-effect latency is measured at a fixed offered rate and at half its maximum;
4. its memory is sampled, and over an optional soak;
5. every measurement is repeated (median and min-max), and the summary goes to
   bench/results/latest.json and a printed table.

`python -m bench profile` shows where the hub spends its CPU (py-spy).
"""
