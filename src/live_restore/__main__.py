from ._cli import app

app()
