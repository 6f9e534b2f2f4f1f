"""contracts/: the ground floor every miniscan process stands on.

What the processes agree on, and nothing else: the records (`records`), the messages on the
pipes (`messages`), the metric definitions (`metrics`), the reasons a message is dead-lettered
(`reasons`), canonical forms (`canonical`), every default (`defaults`) and the lifecycle
every process role follows (`lifecycle`). Imports nothing of
miniscan; everything else may import it.
"""
