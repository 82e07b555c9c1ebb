/*
 * shortd export: writes every live link as a "code<TAB>url" line, in
 * ascending id order, in the format that shortd import reads.
 */
#ifndef SHORTD_APP_EXPORT_H
#define SHORTD_APP_EXPORT_H

/*
 * Runs "shortd export" with argv[0] = "export". Reads the settings like the
 * daemon (config_load_command) and writes to the file named by the operand,
 * or to standard output without one or with "-". Returns the exit status: 0
 * when every live link was written, 1 when the database cannot be read or
 * the output cannot be written (or some link cannot be written as a line),
 * 2 for bad usage.
 */
int export_main(int argc, char **argv);

#endif
