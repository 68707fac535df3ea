"""The baseline of benchmark (e): a bare Flask "hello" under the same gunicorn settings."""

from flask import Flask

app = Flask(__name__)


@app.get("/hello")
def hello():
    return "hello"
