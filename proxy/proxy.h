/* The egress allowlist proxy: an HTTP forward proxy that lets HTTP and
 * CONNECT tunnels through only to allowed hosts and ports, on one io_uring
 * loop. It runs as ringbox-proxy and as `ringbox proxy`. */
#ifndef PROXY_PROXY_H
#define PROXY_PROXY_H

/* Reads the PROXY_* environment variables, listens, and serves until
 * SIGINT or SIGTERM. Logs key=value lines to stderr. Returns the process
 * exit status: 0 after a signal, 2 for invalid configuration, 1 when the
 * proxy cannot start or its loop fails. Blocks the calling thread. */
int proxy_main(void);

#endif
