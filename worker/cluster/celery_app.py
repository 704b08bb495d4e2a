"""The app for Celery's own command line, e.g. the documented Flower line:

    NSECLUSTER_BROKER=redis://HOST:6379/0 celery -A worker.cluster.celery_app flower \\
        --conf=deploy/flowerconfig.py
"""
import os

from worker.cluster.app import make_app

app = make_app(os.environ.get("NSECLUSTER_BROKER", "redis://127.0.0.1:6379/0"))
