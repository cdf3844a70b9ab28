/*
 * The umvu program: starts the guest before any Python runs.
 *
 * `umvu CMD [ARGS]` (no option, no rc file) spawns CMD and follows it in C
 * (umvu_launch, umvu_run_autonomous in libumvutracer.so) while no module is loaded: a
 * session that never loads one never starts an interpreter, and costs the guest about
 * what an exec costs. When an event needs the hypervisor (a vu_* command's knock), the
 * Python runtime is loaded into this same process (the tracer must stay the same
 * thread) and umvu.cli.handed_over() goes on from the event the C loop stopped at; the
 * cffi module umvu.core._tracer links the same libumvutracer.so, so both see one state.
 *
 * Any other command line (options, rc files to run, help) is umvu.cli.main's: this
 * program replaces itself with the Python interpreter running bin/vucmd.
 *
 * Built by scripts/setup.sh with UMVU_PYTHON (the interpreter's path) and
 * UMVU_LIBPYTHON (its shared library's name).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seccomp_helper.h"

#ifndef UMVU_PYTHON
#define UMVU_PYTHON "/usr/bin/python3"
#endif
#ifndef UMVU_LIBPYTHON
#define UMVU_LIBPYTHON "libpython3.11.so.1.0"
#endif

/* what umvu.cli.rc_files() would run: then the guest is a shell, the Python side's */
static int has_rc_files(void)
{
	const char *home = getenv("HOME");
	char path[PATH_MAX];
	if (access("/etc/vurc", F_OK) == 0)
		return 1;
	if (!home || !*home)
		return 1; /* Python finds the home directory some other way: let it */
	if (snprintf(path, sizeof path, "%s/.vurc", home) >= (int)sizeof path)
		return 1;
	return access(path, F_OK) == 0;
}

/* The source tree: the directory above the one this program is in. */
static int find_root(char *root, size_t size)
{
	char exe[PATH_MAX];
	if (!realpath("/proc/self/exe", exe))
		return -1;
	for (int i = 0; i < 2; i++) {
		char *slash = strrchr(exe, '/');
		if (!slash)
			return -1;
		*slash = '\0';
	}
	if (snprintf(root, size, "%s", exe[0] ? exe : "/") >= (int)size)
		return -1;
	return 0;
}

static int run_python(const char *root, int argc, char **argv)
{
	char vucmd[PATH_MAX + 16];
	snprintf(vucmd, sizeof vucmd, "%s/bin/vucmd", root);
	char **pargv = calloc(argc + 3, sizeof *pargv);
	if (!pargv)
		return 1;
	pargv[0] = UMVU_PYTHON;
	pargv[1] = vucmd;
	pargv[2] = "umvu";
	for (int i = 1; i < argc; i++)
		pargv[i + 2] = argv[i];
	execv(UMVU_PYTHON, pargv);
	fprintf(stderr, "umvu: cannot run %s: %s\n", UMVU_PYTHON, strerror(errno));
	return 1;
}

/* The guest waits at an event only the hypervisor can answer: start it here. */
static int hand_over(const char *root)
{
	void *lib = dlopen(UMVU_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL);
	if (!lib) {
		fprintf(stderr, "umvu: cannot load the Python runtime: %s\n", dlerror());
		return 1; /* the guest is killed with us (PTRACE_O_EXITKILL) */
	}
	int (*bytes_main)(int, char **) = (int (*)(int, char **))dlsym(lib, "Py_BytesMain");
	if (!bytes_main) {
		fprintf(stderr, "umvu: %s has no Py_BytesMain\n", UMVU_LIBPYTHON);
		return 1;
	}
	char *pargv[] = {
		UMVU_PYTHON, "-c",
		"import sys\n"
		"sys.path[0] = sys.argv.pop(1)\n"
		"from umvu.cli import handed_over\n"
		"sys.exit(handed_over())\n",
		(char *)root, NULL,
	};
	return bytes_main(4, pargv);
}

int main(int argc, char **argv)
{
	char root[PATH_MAX];
	if (find_root(root, sizeof root) < 0) {
		fprintf(stderr, "umvu: cannot find where umvu is installed\n");
		return 1;
	}
	if (argc < 2 || argv[1][0] == '-' || has_rc_files())
		return run_python(root, argc, argv);
	int pid = umvu_launch(argv + 1, 0, 1, -1);
	if (pid < 0) {
		fprintf(stderr, "umvu: cannot start %s: %s\n", argv[1], strerror(-pid));
		return 126;
	}
	struct umvu_event ev;
	int r = umvu_run_autonomous(&ev);
	if (r > 0)
		return hand_over(root);
	umvu_restore_signals();
	if (r < 0) {
		fprintf(stderr, "umvu: lost the guest: %s\n", strerror(-r));
		return 1;
	}
	return umvu_exit_code();
}
