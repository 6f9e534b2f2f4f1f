"""contracts/: the ground floor every miniscan process stands on.

What the processes agree on, and nothing else: the records (`records`), the messages on the
pipes (`messages`), the metric definitions (`metrics`), the reasons a message is dead-lettered
(`reasons`), canonical forms (`canonical`), every default (`defaults`), the lifecycle
every process role follows (`lifecycle`), which child a process is (`child_id`), how a
setting is offered as a flag (`flags`), the layout of the array the decoders share with
the supervisor (`pull_share_layout`) and how a command's stop signals become an Event
(`signal_relay`). Imports nothing of miniscan; everything else may import it.
"""
