/* libplxfixturedep.so.1: a library the missingdep fixture plugin links
 * against and the dynamic linker cannot find when the plugin is loaded. */
int fixture_dep_value(void);

int fixture_dep_value(void)
{
    return 1;
}
