/*
 * Settings of the daemon, from flags, the environment and a config file.
 *
 * Every setting has a long flag (--listen) and an environment variable
 * (SHORTD_LISTEN). Flags win over the environment, which wins over the file
 * named by --config or SHORTD_CONFIG, which wins over the defaults. The
 * file has one "name = value" per line, where name is the flag without its
 * dashes; '#' starts a comment.
 *
 * The admin key is read only from SHORTD_ADMIN_KEY or from the file named
 * by SHORTD_ADMIN_KEY_FILE, never from a flag, so that it does not show in
 * the process list.
 */
#ifndef SHORTD_APP_CONFIG_H
#define SHORTD_APP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "app/client.h"
#include "app/log.h"

#define CONFIG_SCHEMES_MAX 8

struct config {
    char listen_host[256];
    char listen_port[16];
    char db[4096];
    char base_url[1024]; /* empty: http:// and the listen address */
    unsigned threads;
    unsigned workers;
    uint64_t cache_size;
    uint64_t store_cache_size;
    unsigned max_connections;
    unsigned code_length;
    int redirect_status;
    char schemes_text[256];
    const char *schemes[CONFIG_SCHEMES_MAX];
    size_t scheme_count;
    uint64_t max_url_length;
    uint64_t max_body_size;
    uint64_t max_header_size;
    uint64_t max_request_line;
    uint32_t header_timeout_ms;
    uint32_t body_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t write_timeout_ms;
    uint32_t shutdown_timeout_ms;
    uint32_t negative_ttl_ms;
    enum log_level log_level;
    char config_file[4096];

    bool anonymous_create;
    uint32_t anonymous_rate; /* thousandths of a request per second */
    unsigned anonymous_burst;
    uint32_t key_rate; /* thousandths of a request per second */
    unsigned key_burst;
    uint32_t redirect_rate; /* thousandths of a request per second, 0 for no limit */
    unsigned redirect_burst;
    unsigned rate_limit_clients;
    char trusted_proxies_text[1024];
    struct client_ranges trusted_proxies;
    uint32_t flush_interval_ms;
    bool track_visits;
    int64_t cache_max_age; /* seconds, -1 when unset */
    uint32_t event_keepalive_ms;
    unsigned event_replay;
    unsigned event_queue;
    unsigned max_subscribers;

    char admin_key[256]; /* empty when no admin key is set */
};

/* What config_load asks the caller to do. */
enum config_action {
    CONFIG_RUN,
    CONFIG_HELP,
    CONFIG_VERSION,
};

/*
 * Fills config from defaults, the config file, the environment and argv.
 * Returns 0 and sets *action, or -EINVAL after writing one line per problem
 * to err (each names the setting, the value and what is allowed).
 */
int config_load(struct config *config, int argc, char **argv, enum config_action *action,
                FILE *err);

/* Most operands a subcommand may take. */
#define CONFIG_OPERANDS_MAX 4

/* A subcommand such as "shortd import": the flags it takes and its operands. */
struct config_command {
    const char *name;         /* as typed after "shortd", such as "import" */
    const char *operands;     /* the operands in the usage line, such as "FILE" */
    const char *summary;      /* the paragraph under the usage line of --help */
    const char *const *flags; /* settings taken as flags, NULL-terminated; --config always is */
    unsigned min_operands;
    unsigned max_operands; /* at most CONFIG_OPERANDS_MAX */
};

/* The arguments of a subcommand that are not flags, in order. */
struct config_operands {
    char *values[CONFIG_OPERANDS_MAX]; /* point into argv */
    unsigned count;
    bool after_dashes; /* "--" was seen: the arguments after it are operands */
};

/*
 * Fills config for a subcommand. argv[0] is the subcommand's name and the
 * flags and operands follow it. The config file and the environment are
 * read as for the daemon, every setting included, so that one file serves
 * both. Flags are accepted only for command->flags and --config, and every
 * other argument is an operand: "-" is one, and after "--" every argument
 * is one. The admin key is not read and the daemon's checks across
 * settings are skipped. Returns 0 and sets *action and *operands, or
 * -EINVAL after writing one line per problem to err (an unknown or
 * unaccepted flag, a bad value, too few or too many operands).
 */
int config_load_command(struct config *config, const struct config_command *command, int argc,
                        char **argv, enum config_action *action, struct config_operands *operands,
                        FILE *err);

/* Writes the --help text: usage and every setting with its default. */
void config_print_help(FILE *out);

/* Writes the --help text of a subcommand: usage, summary and its flags. */
void config_print_command_help(const struct config_command *command, FILE *out);

/*
 * Writes the effective base URL (base_url, or http:// and the listen
 * address with the bound port) into out.
 */
void config_base_url(const struct config *config, uint16_t bound_port, char *out, size_t out_len);

#endif
