/* One-off: print kms_box_seal_b64 of argv[1] (associated data argv[2] if
 * given) under the data key 0x00..0x1f, for Ruby Lockbox to open. */
#include <stdio.h>
#include <string.h>
#include <kmsclient.h>

int
main(int argc, char **argv)
{
	unsigned char key[KMS_DATA_KEY_LEN];
	char *b64;
	kms_error e;

	for (int i = 0; i < KMS_DATA_KEY_LEN; i++)
		key[i] = (unsigned char)i;
	if (argc < 2 || kms_box_seal_b64(key, argv[1], strlen(argv[1]),
	    argc > 2 ? argv[2] : NULL, argc > 2 ? strlen(argv[2]) : 0, &b64,
	    &e) != 0)
		return 1;
	puts(b64);
	kms_free(b64);
	return 0;
}
