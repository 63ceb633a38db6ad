"""The run directory: its layout and states (the contract), store, event log, status, run record and summary."""
