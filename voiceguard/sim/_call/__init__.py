"""The parts of ``voiceguard call`` (:mod:`voiceguard.sim.call_command`), one module per concern.

``plan`` reads the options into the calls to make (the script syntax, every check of a value);
``report`` judges a scenario's rules from the caller's side and prints what happened.
"""
