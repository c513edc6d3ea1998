/*
 * log.c: one line per event on stderr, with a journald priority prefix when
 * stderr is the journal.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-journal.h>

#include "log.h"

enum log_level log_max = LOG_LEVEL_INFO;
static int log_journal;

void
log_init(enum log_level max)
{
	log_max = max;
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {
		[LOG_LEVEL_ERR] = "error", [LOG_LEVEL_WARN] = "warning",
		[LOG_LEVEL_INFO] = "info", [LOG_LEVEL_DEBUG] = "debug",
	};
	char line[1024];
	va_list ap;

	if (level > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_journal)
		fprintf(stderr, "<%d>%s\n", (int)level, line);
	else
		fprintf(stderr, "kmsd: %s: %s\n",
		    names[level] != NULL ? names[level] : "log", line);
}

void
log_event(enum log_level level, const char *msgid, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_journal &&
	    sd_journal_send("MESSAGE=%s", line, "MESSAGE_ID=%s", msgid,
	    "PRIORITY=%d", (int)level, "SYSLOG_IDENTIFIER=kmsd", NULL) == 0)
		return;
	log_msg(level, "%s [MESSAGE_ID=%s]", line, msgid);
}
