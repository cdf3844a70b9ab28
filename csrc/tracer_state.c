/* The tracer core's state (tracer_state.h): its one instance, and the per-thread tables,
 * allocated when the first guest starts. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "tracer_internal.h"

/* All zero (in .bss: an initialiser would put its large tables in the file) but for
 * these, set when the library is loaded, before any of its functions can run. */
struct tracer tr;

__attribute__((constructor)) static void tracer_defaults(void)
{
	tr.pid_max = 4194304;
	tr.next_group = 1;
	tr.main_status = -1;
	tr.launch_umask = 022;
	tr.sigchld_fd = -1;
	tr.chld_maybe = 1;
	tr.wait_epfd = -1;
	tr.kick_fd = -1;
	tr.callers_gen = 1; /* (a thread's zeroed entry: unknown) */
}

int tables_init(void)
{
	if (tr.tflags)
		return 0;
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
	if (f) {
		if (fscanf(f, "%ld", &tr.pid_max) != 1)
			tr.pid_max = 4194304;
		fclose(f);
	}
	tr.tflags = calloc(tr.pid_max + 1, sizeof *tr.tflags);
	tr.skipret = calloc(tr.pid_max + 1, sizeof(long));
	tr.notif_id = calloc(tr.pid_max + 1, sizeof *tr.notif_id);
	tr.notif_fd = calloc(tr.pid_max + 1, sizeof *tr.notif_fd);
	tr.notif_nr = calloc(tr.pid_max + 1, sizeof *tr.notif_nr);
	tr.notif_ran = calloc(tr.pid_max + 1, sizeof *tr.notif_ran);
	tr.tree_cap = 256;
	tr.tree = calloc(tr.tree_cap, sizeof *tr.tree);
	return (tr.tflags && tr.skipret && tr.tree && tr.notif_id && tr.notif_fd &&
		tr.notif_nr && tr.notif_ran) ? 0 : -ENOMEM;
}
