/* The binary's command dispatch and exit statuses. */
#include <stdlib.h>
#include <string.h>

#include "test.h"

TEST(help_lists_commands)
{
    CommandResult r = test_run_mixgan("--help");
    CHECK_INT_EQ(r.status, 0);
    CHECK_STR_CONTAINS(r.out, "usage: mixgan <command>");
    test_free_result(&r);
}

TEST(unknown_command_exits_2)
{
    CommandResult r = test_run_mixgan("frobnicate");
    CHECK_INT_EQ(r.status, 2);
    CHECK_STR_CONTAINS(r.err, "unknown command 'frobnicate'");
    test_free_result(&r);
}

TEST(no_command_exits_2)
{
    CommandResult r = test_run_mixgan("%s", "");
    CHECK_INT_EQ(r.status, 2);
    CHECK_STR_CONTAINS(r.err, "usage: mixgan");
    test_free_result(&r);
}
