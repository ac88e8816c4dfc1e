"""The quests service: a catalogue of quests, completions granted exactly once
per user (per day for daily quests), XP and optional coin rewards, and the XP
leaderboard in a Redis sorted set rebuilt from MongoDB when it is missing.

Run it with ``python -m services.quests``; rebuild the leaderboard with
``python -m services.quests rebuild-leaderboard``; retry unconfirmed coin
rewards once with ``python -m services.quests sweep-credits`` (the service
also does it in the background).
"""
