/*
 * log.h: the daemon's log, to stderr (journald under systemd).
 *
 * Under journald (JOURNAL_STREAM set) lines carry the <N> priority prefix
 * sd-daemon(3) describes; on a terminal they read "kmsd: error: ...".
 * Nothing secret is ever passed here: callers log key names, ops, peers
 * and reasons, never key material, plaintexts or credentials.
 */
#ifndef KMSD_LOG_H
#define KMSD_LOG_H

enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARN = 4,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

void log_init(enum log_level max);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* journald MESSAGE_IDs of events an operator may alert on (documented in
 * the README; never change them). */
#define LOG_MSGID_BREAKER_TRIP "28c54d5b718b4b75be357e60a26fa78d"
#define LOG_MSGID_DECRYPT_DISABLED "c1038bddfb874151b6fe863333cba052"

/* An event with a MESSAGE_ID: a structured journal entry under journald,
 * a plain line ending in [MESSAGE_ID=...] elsewhere. */
void log_event(enum log_level level, const char *msgid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
/* The most verbose level written (log_init). */
extern enum log_level log_max;
/* Debug lines are built only when they are wanted: their arguments (a
 * client's key name made printable, say) cost work on every request. */
#define log_debug(...) do {						\
	if (log_max >= LOG_LEVEL_DEBUG)					\
		log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);			\
} while (0)

#endif
