/* Declarations shared by the files of the ringbox command: option parsing,
 * size and duration parsing, base64, UTF-8 checks, the JSON result encoder
 * and batch request decoding. */
#ifndef RBX_CLI_H
#define RBX_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ringbox.h"

/* Exit codes of `ringbox run` besides the command's own (docs/CLI.md). */
#define CLI_EXIT_TIMEOUT 124      /* as timeout(1) */
#define CLI_EXIT_FAILURE 125      /* bad usage, or the sandbox failed */
#define CLI_EXIT_CANCELLED 130    /* 128 + SIGINT */
#define CLI_EXIT_OOM 137          /* 128 + SIGKILL, as docker run */
#define CLI_EXIT_OUTPUT_LIMIT 141 /* 128 + SIGPIPE, as `cmd | head -c N` */

/* Limits on what the command line and batch requests may ask for. */
#define CLI_STDIN_MAX ((size_t)64 << 20) /* -i and a batch request's stdin */
#define CLI_MEMORY_MIN_MIB 6             /* the smallest limit runc takes */
#define CLI_CPUS_MAX 1024.0
#define CLI_PIDS_MAX 4194304           /* the kernel's largest pid_max */
#define CLI_TIMEOUT_MAX_S (86400 * 30) /* --timeout and "timeout" */
#define CLI_LIST_MAX 4096              /* -e, --mount, --allow-host... */
#define CLI_ARGV_MAX 4096              /* words of one command */
#define CLI_CONCURRENCY_MAX 4096       /* batch --concurrency */
#define CLI_MESSAGE_MAX RBX_ERROR_MESSAGE_MAX

enum cli_mode {
  CLI_MODE_RUN,
  CLI_MODE_BATCH,
};

/* A growable array of borrowed or owned pointers, NULL-terminated. */
struct cli_list {
  void **items;
  size_t count;
  size_t cap;
};

/* Settings from the options of `run` and `batch`. Strings point into argv,
 * except mount paths, which the parser copies (cli_config_free frees them). */
struct cli_config {
  struct rbx_options opts;
  struct rbx_policy policy;
  bool unsafe;
  bool json;
  bool pass_stdin;
  bool help;
  int verbosity;
  const char *workdir;
  /* --proxy-name or --egress-network when given: they need limited. */
  const char *limited_option;
  struct cli_list env;      /* "KEY=VALUE" */
  struct rbx_mount *mounts; /* source and target are owned */
  size_t mounts_count;
  struct cli_list allow_hosts;   /* borrowed */
  struct cli_list allowed_roots; /* borrowed */
  /* run: the command; batch: the input file or "-" (NULL: stdin). */
  char *const *command;
  int command_count;
  const char *input_path;
  unsigned concurrency; /* batch: executions at once */
};

void cli_config_init(struct cli_config *cfg);
void cli_config_free(struct cli_config *cfg);

/* Parses the arguments after the subcommand word and checks how options go
 * together. Returns 0, or -EINVAL with a message naming the option, its
 * value and what to do (cfg must still be freed). */
int cli_parse_args(struct cli_config *cfg, enum cli_mode mode, int argc,
                   char **argv, char *msg, size_t msg_size);

/* Value parsers. Each returns 0, or -EINVAL with a phrase in reason that
 * follows the value in a message, such as "is not a number". */
int cli_parse_size(const char *text, uint64_t default_unit, uint64_t *bytes,
                   char *reason, size_t reason_size);
int cli_parse_memory_mib(const char *text, uint64_t *mib, char *reason,
                         size_t reason_size);
int cli_parse_duration_ms(const char *text, uint64_t *ms, char *reason,
                          size_t reason_size);
int cli_parse_cpus(const char *text, double *cpus, char *reason,
                   size_t reason_size);
int cli_parse_network(const char *text, enum rbx_network *network, char *reason,
                      size_t reason_size);
int cli_parse_runtime(const char *text, enum rbx_runtime *runtime, char *reason,
                      size_t reason_size);
/* Parses "src=PATH,dst=PATH[,readonly]" (docker's --mount words). On
 * success source and target are malloc'd copies owned by the caller. */
int cli_parse_mount(const char *text, struct rbx_mount *mount, char *reason,
                    size_t reason_size);
/* Checks a "KEY=VALUE" environment entry. */
int cli_check_env(const char *entry, char *reason, size_t reason_size);

int cli_list_push(struct cli_list *list, void *item);
void cli_list_free(struct cli_list *list, bool free_items);

/* Base64 (RFC 4648, standard alphabet). encode writes a NUL-terminated
 * string of cli_base64_encoded_len(len) bytes to out. decode accepts text
 * with or without padding and returns 0 or -EINVAL; out must have room for
 * cli_base64_decoded_max(len) bytes. */
size_t cli_base64_encoded_len(size_t len);
void cli_base64_encode(const uint8_t *data, size_t len, char *out);
size_t cli_base64_decoded_max(size_t text_len);
int cli_base64_decode(const char *text, size_t text_len, uint8_t *out,
                      size_t *out_len);

/* Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
bool cli_utf8_valid(const uint8_t *data, size_t len);

/* A growing output buffer. A failed allocation sets `failed` and later
 * appends do nothing, so a writer checks once at the end. */
struct cli_buf {
  char *data;
  size_t len;
  size_t cap;
  bool failed;
};

void cli_buf_append(struct cli_buf *buf, const void *data, size_t len);
void cli_buf_puts(struct cli_buf *buf, const char *text);
void cli_buf_printf(struct cli_buf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cli_buf_free(struct cli_buf *buf);

/* Appends a JSON string literal. Invalid UTF-8 sequences become U+FFFD, so
 * the output is valid JSON for any bytes. */
void cli_json_string(struct cli_buf *buf, const uint8_t *data, size_t len);

/* The origin of a batch result line: the raw JSON text of the request's
 * "id" (NULL: null) and its line number. A NULL tag means `run --json`. */
struct cli_result_tag {
  const char *id_json;
  size_t id_len;
  unsigned long line;
};

/* Appends one JSON object and a newline for a result or an error. */
void cli_json_result(struct cli_buf *buf, const struct cli_result_tag *tag,
                     const struct rbx_result *result);
void cli_json_error(struct cli_buf *buf, const struct cli_result_tag *tag,
                    const char *kind, const char *message);

/* Maximum length of a `batch` input line: room for a base64 stdin of
 * CLI_STDIN_MAX plus the other fields. */
#define CLI_BATCH_LINE_MAX (CLI_STDIN_MAX / 3 * 4 + ((size_t)1 << 20))

/* One decoded batch request. Strings point into `json` (a cJSON tree) or
 * into `owned`; cli_request_free releases both. */
struct cli_request {
  char *id_json; /* raw text of "id", owned; NULL when absent */
  size_t id_len;
  void *json;
  struct cli_list argv;
  struct cli_list env;
  const char *workdir;
  uint8_t *stdin_data;
  size_t stdin_len;
  bool has_stdin;
  struct rbx_mount *mounts;
  size_t mounts_count;
  struct cli_list allow_hosts;
  struct cli_list owned;
  struct rbx_policy policy;
};

/* Decodes one input line into req, starting from the policy in defaults.
 * Returns 0, or -EINVAL with a message saying which field is wrong. The
 * request's id is filled whenever the line is a JSON object, so an error
 * result can echo it. Free req with cli_request_free in both cases. */
int cli_request_decode(struct cli_request *req, const char *line, size_t len,
                       const struct cli_config *defaults, char *msg,
                       size_t msg_size);
void cli_request_free(struct cli_request *req);

/* Fills spec from a decoded request; spec borrows req's memory. */
void cli_request_spec(const struct cli_request *req, struct rbx_spec *spec);

/* Subcommands; each returns the process exit code. */
int cli_run_main(int argc, char **argv);
int cli_batch_main(int argc, char **argv);
int cli_gc_main(int argc, char **argv);
int cli_proxy_main(int argc, char **argv);

/* The stderr log sink ("ringbox: level: line") and the options every
 * subcommand shares: runtime, daemon URL and log level from -v. */
void cli_log_sink(enum rbx_log_level level, const char *line, void *userdata);
void cli_apply_verbosity(struct rbx_options *opts, int verbosity);

/* Prints the warning that --runtime host gives no isolation. */
void cli_warn_host_runtime(void);

/* Help texts, printed by main.c. */
void cli_print_run_help(FILE *out);
void cli_print_batch_help(FILE *out);

#endif
