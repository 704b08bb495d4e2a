# Flower settings for an nsecluster cluster (`nsecluster flower` passes the same ones).
# Tasks are named per scan and host group ("nsecluster.group <scan> #<n>"); a running group
# shows the custom PROGRESS state with its port scan share, script threads and scripts.
import os

address = os.environ.get("FLOWER_ADDRESS", "127.0.0.1")  # never beyond this machine unless asked
port = int(os.environ.get("FLOWER_PORT", "5555"))
max_tasks = 20000  # tasks kept in memory for the dashboard
persistent = False
purge_offline_workers = 300  # seconds before a dead worker leaves the dashboard
natural_time = False
basic_auth = [os.environ["FLOWER_BASIC_AUTH"]] if os.environ.get("FLOWER_BASIC_AUTH") else []
