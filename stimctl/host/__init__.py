"""The host's I/O and state: serial link, connection, interlock, schedule and streamer, the session
(the one owner of a session's state), device mirror, record writer and reader, status, errors, ports
and the embedded simulator (the only host module that imports firmware_sim)."""
