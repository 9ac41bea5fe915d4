from veille.cli import app

app()
