"""`python -m payletter_emulator` is the `payletter-emulator` command."""
from .client.cli import main

if __name__ == "__main__":  # not when a worker process (multiprocessing's spawn) imports it
    main()
