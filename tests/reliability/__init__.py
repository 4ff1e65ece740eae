"""The reliability scorecard: crashes, outages, rebalances and hostile input, with nothing lost.

    generator.py   deterministic workloads and the ledger of what was published
    oracle.py      what the contract says each ledger event must leave behind
    publisher.py   publish a ledger (one record per produce batch), recording positions
    harness.py     the services a scenario runs against and the `hub run` processes it abuses
    faultproxy.py  a TCP proxy with delay, resets and black-holes
    checker.py     Jepsen-style anomalies from Postgres and the handler queues
    clockcheck.py  the clock's oracle: clock_firings against the timers the events call for
    dispatchcheck.py  dispatch's oracle: notifications against what the receivers got
    peers.py       the SMTP and HTTP receivers of the dispatch scenarios
    scenarios.py   the course of a scenario and the eleven event-path scenarios
    clock_scenarios.py, dispatch_scenarios.py  the clock's four and dispatch's three
    runner.py      run them, judge each from all its attempts (only a stall is re-run), print and save

Run it with `python -m tests.reliability` (see __main__.py) or `pytest tests/reliability`.
"""
