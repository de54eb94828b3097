"""`python -m reconciler`: the jitgrant command, for when the console script is not on PATH."""

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
