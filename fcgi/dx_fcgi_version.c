/* dx_fcgi_version.c: the responder's version string, in the library so tests link it. */
const char *dx_fcgi_version(void) { return DEMIX_VERSION; }
