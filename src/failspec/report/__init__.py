"""Living documentation built from a run: reports/report.html for people, JUnit for CI.

``python -m failspec.report <reports-dir>`` writes the HTML report (failspec.report.html);
failspec.report.junit writes the JUnit error of a run that could not start.
"""
