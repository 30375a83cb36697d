"""Concurrency: named sessions (T1, T2 …) that run side by side, and what they mean.

Add a kind of session or an anomaly here. ``interleaving`` drives each named session on a
thread of its own, one step at a time, and sees who waits for whom; ``isolation`` records
what each transaction read and wrote and judges Adya's anomalies (the isolation matrix);
``cancellation`` cancels a running statement from the application or as an administrator,
and runs a worker process that goes away without cancelling; ``generated`` runs many
random transactions at once and records them, and ``cycles`` checks such a record for
dependency cycles (the generated matrix).
"""
