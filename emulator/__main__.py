"""`python -m payletter_emulator` is the `payletter-emulator` command."""
from .cli import main

main()
