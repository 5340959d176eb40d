"""`python -m pipelines.cli`: the same as the `cardamage` command."""

from pipelines.cli import app

app(prog_name="cardamage")
