# a small C project built with make -j2
mkdir -p cproj && cd cproj
cat > a.c <<'X'
int a(int x) { return x * 2; }
X
cat > b.c <<'X'
int b(int x) { return x + 40; }
X
cat > main.c <<'X'
#include <stdio.h>
int a(int); int b(int);
int main(void) { printf("result %d\n", b(a(1))); return 0; }
X
printf 'prog: main.o a.o b.o\n\t$(CC) -o $@ $^\n%%.o: %%.c\n\t$(CC) -O1 -c $<\n' > Makefile
make -s -j2 && ./prog
