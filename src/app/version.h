/* The version of shortd, printed by --version and logged at start. */
#ifndef SHORTD_APP_VERSION_H
#define SHORTD_APP_VERSION_H

#define SHORTD_VERSION "0.1.0"

#endif
