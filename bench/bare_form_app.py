"""The least any Flask view can do with a form post: parse the urlencoded form and answer 303. It checks and
stores nothing. bench/form_floor.py measures it against the bare "hello" of benchmark (e)."""

from flask import Flask, redirect, request

app = Flask(__name__)


@app.post("/r/<code>")
def post(code: str):
    form = request.form
    _values = {name: form.get(name, "")[:500] for name in ("name", "email", "company", "phone")}  # read as ours is
    return redirect(f"/r/{code}/thanks", 303)
