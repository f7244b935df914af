"""A small service built from framework objects whose state sits behind
descriptors: a traitlets application (what IPython and ipykernel are made of),
a Django model instance and a SQLAlchemy mapped instance (no database), a
Flask app, a FastAPI app, a gunicorn arbiter (constructed, not run) and a
functools.cached_property. The evaluator reads their stored values without
running any of their code (README, "Framework objects the evaluator reads"):

    python examples/framework_objects.py &
    inspector eval $! "app.workers"                  # traitlets: 4
    inspector eval $! "app.kernel.shell.user_ns"     # traitlets Instance/Dict
    inspector eval $! "order.sku, order.customer_id" # Django fields, a foreign key id
    inspector eval $! "user.name"                    # SQLAlchemy column
    inspector eval $! "[r.rule for r in flask_app.url_map._rules]"
    inspector eval $! "[r.path for r in api.routes]" # FastAPI/Starlette
    inspector eval $! "arbiter.num_workers"          # gunicorn: 3
    inspector eval $! "report.total"                 # a computed cached_property
    inspector eval $! "report.pending"               # not computed: refused, exit 3

Needs the frameworks it shows (pip install traitlets Django SQLAlchemy Flask
fastapi gunicorn); one that is not installed is left out. Prints one "ready"
line once everything is built.
"""

import functools
import os
import sys
import time

CALLS = []  # every getter below that runs appends here: a query must not run any


class Report:
    def __init__(self, rows):
        self.rows = rows

    @functools.cached_property
    def total(self):
        CALLS.append("Report.total")
        return sum(self.rows)

    @functools.cached_property
    def pending(self):  # never computed by the service: a query must not compute it
        CALLS.append("Report.pending")
        return len(self.rows)


class Recorder:
    """A descriptor the evaluator does not know: reading it would run __get__."""

    def __get__(self, obj, owner=None):
        CALLS.append("Recorder.__get__")
        return 42


class Probe:
    value = Recorder()


def traitlets_objects():
    from traitlets import Dict, Instance, Int, Unicode, default
    from traitlets.config import Application

    class Shell(Application):
        user_ns = Dict()

    class Kernel(Application):
        shell = Instance(Shell)
        session_token = Unicode("tok-0123456789")  # redacted: the name looks secret

    class ServiceApp(Application):  # the shape of ipykernel's IPKernelApp
        kernel = Instance(Kernel, allow_none=True)
        workers = Int(4).tag(config=True)
        banner = Unicode()

        @default("banner")
        def _banner(self):  # a dynamic default never read by the service
            CALLS.append("ServiceApp._banner")
            return "hello"

    app = ServiceApp()
    app.kernel = Kernel(shell=Shell(user_ns={"x": 1, "df_rows": 1200}))
    return {"app": app}


def django_objects():
    import django
    from django.conf import settings

    settings.configure(INSTALLED_APPS=[], DATABASES={}, USE_TZ=True)
    django.setup()
    from django.db import models

    class Customer(models.Model):
        name = models.CharField(max_length=50)

        class Meta:
            app_label = "shop"

    class Order(models.Model):
        sku = models.CharField(max_length=20)
        qty = models.IntegerField()
        customer = models.ForeignKey(Customer, on_delete=models.CASCADE)

        class Meta:
            app_label = "shop"

    order = Order(id=7, sku="A-100", qty=3, customer_id=12)
    deferred = Order(id=8, sku="B-200", qty=1, customer_id=12)
    del deferred.__dict__["qty"]  # what .only("sku") leaves: reading it would query
    return {"order": order, "deferred": deferred}


def sqlalchemy_objects():
    from sqlalchemy import ForeignKey
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "users"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str]
        addresses: Mapped[list["Address"]] = relationship(back_populates="user")

    class Address(Base):
        __tablename__ = "addresses"
        id: Mapped[int] = mapped_column(primary_key=True)
        user_id = mapped_column(ForeignKey("users.id"))
        user: Mapped[User] = relationship(back_populates="addresses")

    return {"user": User(id=1, name="ada")}  # addresses not loaded: refused


def flask_objects():
    from flask import Flask

    flask_app = Flask("shop")

    @flask_app.route("/orders/<int:order_id>")
    def order(order_id):
        return str(order_id)

    flask_app.name  # noqa: B018 - computed once, as serving a request does
    return {"flask_app": flask_app}


def fastapi_objects():
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/items/{item_id}")
    def item(item_id: int):
        return {"item_id": item_id}

    return {"api": api}


def gunicorn_objects():
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    class Service(BaseApplication):
        def load_config(self):
            self.cfg.set("workers", 3)
            self.cfg.set("bind", "127.0.0.1:0")

        def load(self):
            return lambda environ, start_response: []

    return {"arbiter": Arbiter(Service())}  # constructed, never run


BUILDERS = (traitlets_objects, django_objects, sqlalchemy_objects, flask_objects,
            fastapi_objects, gunicorn_objects)


def build():
    """The service's objects by name, and the frameworks left out (not installed)."""
    report = Report([3, 4])
    report.total  # noqa: B018 - computed by the service; `pending` never is
    found = {"report": report, "probe": Probe(), "calls": CALLS}
    missing = []
    for builder in BUILDERS:
        try:
            found.update(builder())
        except ImportError as e:
            missing.append(str(e.name))
    del CALLS[:]
    return found, missing


def main():
    objects, missing = build()
    globals().update(objects)
    print("ready pid=%d missing=%s" % (os.getpid(), ",".join(missing)), flush=True)
    while True:
        time.sleep(0.5)
        if len(sys.argv) > 1 and sys.argv[1] == "--once":
            break


if __name__ == "__main__":
    main()
