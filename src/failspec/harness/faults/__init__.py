"""Faults: everything the specification does to the database's surroundings.

Add a fault here. ``proxy`` is the userland TCP proxy between the application and the
server (cut, stall, refuse, lose a reply); ``network`` puts it in front of a scenario and
adds real packet loss (``packet_filter``: iptables on the loopback); ``server`` crashes,
restarts, pauses the server and injects failures inside it (armed per scenario, counted
exactly); ``hangs`` combines them into the hang matrix: each phase of a request under each
kind of silence, and what bounds the wait.
"""
