package fabrik.e2e;

/** The one class the fixture compiles, so compileJava has cacheable work. */
public final class Hello {
    private Hello() {}

    public static String greet(String who) {
        return "hello, " + who;
    }
}
