/*
 * check_main.h: the one main() of every Check suite.
 *
 * A suite file defines `static Suite *suite(void)` and includes this file
 * last. Results go to stdout as TAP (one line a test case) so that ./dev test
 * counts cases, not executables; CK_ENV still honours CK_RUN_CASE etc.
 */
#ifndef KMSD_CHECK_MAIN_H
#define KMSD_CHECK_MAIN_H

#include <stdlib.h>

#include <check.h>

static Suite *suite(void);

int
main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_set_tap(sr, "-");
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
