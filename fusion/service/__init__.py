"""The fusion service: ZeroMQ ingest, ordering, the core call, publishing, queries, snapshots.

`fusion.service.server.FusionService` is the entry point; the other modules each own one step
of the data flow (see their docstrings).
"""
