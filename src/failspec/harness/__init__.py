"""What the specification runs on: servers, per-scenario schemas, sessions, outcomes."""
