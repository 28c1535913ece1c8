/* <vmstream.h> is the only include: the public header must be
 * self-contained and clean under -std=c11 -pedantic -Wall -Wextra -Werror. */
#include <vmstream.h>

int main(void)
{
	return 0;
}
