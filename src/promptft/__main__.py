"""`python -m promptft ...`: what `accelerate launch -m promptft train ...` and `torchrun -m promptft` run."""

from promptft.cli import app

if __name__ == "__main__":
    app(prog_name="promptft")
