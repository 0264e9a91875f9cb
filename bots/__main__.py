"""`python -m bots`: the same command line as the `perpetua` console script."""

from bots.cli import main

if __name__ == "__main__":
    main()
