"""Living documentation built from a run: reports/report.html for people, JUnit for CI.

The harness writes one record of the run, reports/run.json (failspec.report.record);
every view is rendered from it alone: ``python -m failspec.report <reports-dir>`` writes
the HTML report (failspec.report.html), ``python -m failspec.report.closing
<reports-dir>`` prints the closing line. failspec.report.junit adds to behave's JUnit what
CI needs (a run that could not start, scenarios a stopped run never reached).
"""
