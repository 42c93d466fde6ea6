"""The API's routes, one router per kind of request: the server's health (server), the requests
that queue or stop attempts and need the token (run_actions), the reads that follow attempts
(run_reads). create_app includes them with the token check each needs."""
