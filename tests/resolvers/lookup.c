/* A tiny stub-resolver client for tests/resolvers.rs: COUNT lookups of NAME
 * through getaddrinfo(3) with AF_UNSPEC (A and AAAA, as a pod's lookup
 * does), one after another. Built with musl-gcc -static by the test, so
 * the resolver under test is musl's; prints how many lookups got both an
 * IPv4 and an IPv6 address. Exit 0 when all did. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s NAME COUNT\n", argv[0]);
		return 2;
	}
	long count = strtol(argv[2], NULL, 10);
	long both = 0, failed = 0;
	for (long i = 0; i < count; i++) {
		struct addrinfo hints, *res = NULL, *ai;
		memset(&hints, 0, sizeof hints);
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_DGRAM;
		int rc = getaddrinfo(argv[1], NULL, &hints, &res);
		if (rc != 0) {
			failed++;
			continue;
		}
		int v4 = 0, v6 = 0;
		for (ai = res; ai; ai = ai->ai_next) {
			v4 |= ai->ai_family == AF_INET;
			v6 |= ai->ai_family == AF_INET6;
		}
		both += v4 && v6;
		freeaddrinfo(res);
	}
	printf("lookups %ld both %ld failed %ld\n", count, both, failed);
	return both == count ? 0 : 1;
}
