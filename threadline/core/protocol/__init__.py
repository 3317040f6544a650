"""The thread-centric streaming protocol of current SDKs ("v3" clients, protocol v2).

A thread has one event log (`log_stream`), written by the runs started through the
protocol (`commands.py`) and read by any number of filtered subscribers (`stream.py`,
`filters.py`). What a graph streams becomes protocol events in `events.py`.
"""
