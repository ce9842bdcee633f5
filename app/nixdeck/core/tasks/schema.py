"""SQLite schema of the task history and its migrations (PRAGMA user_version)."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # v1: tasks, devices, steps, processes, messages
    """
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        state TEXT NOT NULL,
        author TEXT NOT NULL,
        created TEXT NOT NULL,
        started TEXT,
        ended TEXT,
        project TEXT,
        devices TEXT NOT NULL DEFAULT '[]',
        parent_id INTEGER REFERENCES tasks(id) ON DELETE CASCADE,
        origin_id INTEGER,
        forced INTEGER NOT NULL DEFAULT 0,
        silent INTEGER NOT NULL DEFAULT 0,
        timeout REAL,
        error TEXT,
        warnings TEXT NOT NULL DEFAULT '[]',
        result TEXT NOT NULL DEFAULT '{}',
        submission TEXT NOT NULL DEFAULT '{}',
        progress REAL,
        phase TEXT NOT NULL DEFAULT '',
        attempt INTEGER NOT NULL DEFAULT 1,
        max_attempts INTEGER NOT NULL DEFAULT 1,
        owner_pid INTEGER,
        owner_start INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_state ON tasks(state, id);
    CREATE INDEX tasks_kind ON tasks(kind, id);
    CREATE INDEX tasks_created ON tasks(created);
    CREATE INDEX tasks_parent ON tasks(parent_id, id);
    CREATE INDEX tasks_origin ON tasks(origin_id);
    CREATE TABLE task_devices (
        task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        device TEXT NOT NULL,
        PRIMARY KEY (task_id, device)
    );
    CREATE INDEX task_devices_device ON task_devices(device, task_id);
    CREATE TABLE steps (
        task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        job TEXT NOT NULL,
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        started TEXT,
        ended TEXT,
        detail TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (task_id, job, idx)
    );
    CREATE TABLE processes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        job TEXT,
        step TEXT,
        attempt INTEGER NOT NULL DEFAULT 1,
        argv TEXT NOT NULL,
        cwd TEXT,
        env TEXT NOT NULL DEFAULT '{}',
        pid INTEGER,
        start_ticks INTEGER,
        exit_code INTEGER,
        signal INTEGER,
        started TEXT,
        ended TEXT,
        stdout_path TEXT,
        stderr_path TEXT,
        stdout_size INTEGER NOT NULL DEFAULT 0,
        stderr_size INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX processes_task ON processes(task_id);
    CREATE INDEX processes_live ON processes(ended) WHERE ended IS NULL;
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
        level TEXT NOT NULL,
        message TEXT NOT NULL,
        file TEXT,
        line INTEGER,
        col INTEGER,
        trace TEXT NOT NULL DEFAULT '[]',
        source TEXT NOT NULL DEFAULT 'nixdeck',
        created TEXT NOT NULL
    );
    CREATE INDEX messages_task ON messages(task_id, level);
    """,
    # v2: how a remote command really ran (connection, host key, exact command); '{}' for local ones
    """
    ALTER TABLE processes ADD COLUMN remote TEXT NOT NULL DEFAULT '{}';
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
