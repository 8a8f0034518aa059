"""What every `lion-export` command shares, so that cli.py's commands only parse, call the library and print.

errors.py: one error context (bad input: one line, exit 2; failed check: exit 1; interrupts: 130 / 143);
group.py: the command group (`lion-export MODEL.pt` means export; mistyped commands named);
options.py: option groups that arrive as objects (`reading`, `ParityOptions`);
param_types.py: click types over the library's own tables and parsers;
steps.py: the verify and build steps several commands end with.
Nothing here does the work of a command: that lives in the library, where Python callers reach it too.
"""
