export default function Home() {
  return (
    <main style={{ fontFamily: "system-ui, sans-serif", padding: "4rem", maxWidth: "40rem" }}>
      <h1>Your app starts here</h1>
      <p>
        Describe what you want to build to the agent in the terminal. This page is{" "}
        <code>app/page.tsx</code>; the dev server listens on port 3000.
      </p>
    </main>
  );
}
