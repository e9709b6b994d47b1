"""`lambdastack doctor`: every part of the stack checked in a few seconds, one line per check, and
what to do about each problem (probes ask the services, checks judge, the screen renders)."""
