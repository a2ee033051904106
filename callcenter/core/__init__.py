"""Orchestration: feeds telephony events into ivr/ and acd/ and turns their actions into commands."""
